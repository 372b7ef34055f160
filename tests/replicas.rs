//! Replicas of the real binary sharing one PostgreSQL schema, as `docker-compose.yml` runs them:
//! concurrent first requests spread over three replicas train once and get one answer; a
//! retrain on one replica reaches the others through the notification; a replica killed
//! (SIGKILL) mid-training frees the symbol for another; restarted replicas load from the
//! database and train nothing.
//!
//! They need the test PostgreSQL (see `common/postgres.rs`): without it they skip with a message,
//! unless `COINSPHERE_REQUIRE_POSTGRES=1` (`.ci/run`), where they fail.

use std::time::{Duration, Instant};

use coinsphere_ml::prices::repository_last_closes;
use serde_json::json;

#[path = "common/postgres.rs"]
mod pg;
#[path = "common/replica.rs"]
mod replica;
use pg::Schema;
use replica::{
    generation, predict, predict_at, runtime, start_all, trainings, wait_for, Replica, PATIENCE,
};

#[test]
fn three_replicas_train_once_share_retrains_and_restart_without_training() {
    let Some(schema) = Schema::new("replicas") else {
        return;
    };
    runtime().block_on(train_once_share_and_restart(&schema));
}

async fn train_once_share_and_restart(schema: &Schema) {
    let client = reqwest::Client::new();
    let ids = ["r1", "r2", "r3"];
    let replicas = start_all(schema, &ids, 3).await;
    let prices = repository_last_closes("BTC", 365);

    // Eight concurrent first requests, spread over the three replicas.
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let base = replicas[i % 3].base.clone();
            tokio::spawn(predict_at(client.clone(), base, prices.clone()))
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &answers[0].1, "every replica gives the same answer");
    }
    let mut healths = Vec::new();
    for replica in &replicas {
        healths.push(replica.health(&client).await);
    }
    let total: u64 = healths.iter().map(trainings).sum();
    assert_eq!(total, 1, "one training across the replicas: {healths:?}");
    let first = generation(&healths[0]).expect("r1 serves a published generation");
    for health in &healths {
        assert_eq!(generation(health), Some(first));
        assert_eq!(health["store"]["kind"], "postgres");
    }

    // A retrain on r1 reaches r2 and r3 through the notification.
    let newer = repository_last_closes("BTC", 300);
    let retrain = client
        .post(format!("{}/models/BTC/train", replicas[0].base))
        .json(&json!({"historical_prices": newer}))
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(retrain.status(), 200);
    let published = Instant::now();
    let second = generation(&replicas[0].health(&client).await).unwrap();
    assert!(second > first);
    for replica in &replicas[1..] {
        loop {
            if generation(&replica.health(&client).await) == Some(second) {
                break;
            }
            assert!(
                published.elapsed() < Duration::from_secs(10),
                "replica {} never served generation {second}",
                replica.id
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!(
        "retrain on r1 served by r2 and r3 after {:?}",
        published.elapsed()
    );
    let mut retrained = Vec::new();
    for replica in &replicas {
        retrained.push(predict(&client, replica, &prices).await);
    }
    for (status, body) in &retrained {
        assert_eq!(*status, 200);
        assert_eq!(body, &retrained[0].1);
    }
    for (replica, before) in replicas.iter().zip(&healths).skip(1) {
        let now = replica.health(&client).await;
        assert_eq!(
            trainings(&now),
            trainings(before),
            "{} trained again",
            replica.id
        );
    }

    // Every replica stops (SIGTERM, cleanly); new ones load from the database and train
    // nothing.
    let mut replicas = replicas;
    for replica in &mut replicas {
        replica.stop();
    }
    drop(replicas);
    let replicas = start_all(schema, &ids, 3).await;
    for replica in &replicas {
        let answer = predict(&client, replica, &prices).await;
        assert_eq!(answer, retrained[0]);
        let health = replica.health(&client).await;
        assert_eq!(trainings(&health), 0, "{health}");
        assert_eq!(generation(&health), Some(second));
    }
}

#[test]
fn a_replica_killed_mid_training_frees_the_symbol_for_another() {
    let Some(schema) = Schema::new("killed") else {
        return;
    };
    runtime().block_on(kill_mid_training(&schema));
    let trained_by: String = schema
        .client()
        .query_one(
            &format!("SELECT trained_by FROM {}.models", schema.name),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        trained_by, "fast",
        "the model in the database is the fast replica's"
    );
}

async fn kill_mid_training(schema: &Schema) {
    let client = reqwest::Client::new();
    // The slow replica trains for minutes (1,000 epochs of 1,500 prices, one thread; early
    // stopping needs at least 9 epochs, several seconds): it is killed long before it ends.
    let mut slow = Replica::start(schema, "slow", 1000);
    let fast = Replica::start(schema, "fast", 2);
    slow.ready(&client).await;
    fast.ready(&client).await;
    let prices = repository_last_closes("BTC", 1500);

    let doomed = {
        let (client, base, prices) = (client.clone(), slow.base.clone(), prices.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/predict"))
                .json(&json!({"symbol": "btc", "historical_prices": prices}))
                .send()
                .await
        })
    };
    wait_for(&client, &slow, "trainings_running", 1).await;
    let survivor = {
        let (client, base, prices) = (client.clone(), fast.base.clone(), prices.clone());
        tokio::spawn(async move {
            let answer = client
                .post(format!("{base}/predict"))
                .json(&json!({"symbol": "btc", "historical_prices": prices}))
                .timeout(PATIENCE)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        })
    };
    // The fast replica waits for the slow one's lock instead of training beside it.
    wait_for(&client, &fast, "trainings_waiting", 1).await;
    let before_kill = slow.health(&client).await;
    assert_eq!(before_kill["training"]["trainings_running"], 1);
    assert_eq!(trainings(&fast.health(&client).await), 0);
    slow.kill();
    assert!(
        doomed.await.unwrap().is_err(),
        "the killed replica answers nothing"
    );

    let (status, body) = survivor.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let health = fast.health(&client).await;
    assert_eq!(trainings(&health), 1, "the fast replica trained: {health}");
}

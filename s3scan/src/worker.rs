//! Worker mode: consume S3 event notifications from an SQS queue, and hand each object version
//! to the [`Pipeline`]. At-least-once: a message is deleted only once every object it names is
//! settled (tagged, gone, or untaggable for good); otherwise it comes back after its visibility
//! timeout, to this worker or another. While an object scans, the message's visibility is
//! extended every third of the timeout, so a large object is not handed to a second worker
//! meanwhile; a worker that dies stops extending, and the message returns. Workers keep no
//! state, so any number can share one queue.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::S3ScanError;
use crate::event::{self, ObjectRef, Parsed};
use crate::pipeline::{Outcome, Pipeline};

/// How the worker uses its queue.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub queue_url: String,
    /// Long-poll wait per ReceiveMessage (0-20 s).
    pub wait_seconds: i32,
    /// Visibility timeout the worker asks for and keeps extending while it works.
    pub visibility: Duration,
    /// Messages processed at once.
    pub concurrency: usize,
    /// At this receive count a failure that would be retried is tagged FAILED instead.
    pub max_attempts: u32,
    /// Exit after the queue has been empty this long (with nothing in flight).
    pub idle_exit: Option<Duration>,
}

/// What happened to each object, for the program's output.
pub type OnOutcome = Arc<dyn Fn(&ObjectRef, &Outcome) + Send + Sync>;

/// Counts over a worker's life.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub messages: u64,
    pub objects: u64,
    pub retried: u64,
    pub errors: u64,
}

/// Runs until `stop` completes (then finishes what is in flight) or the idle timeout passes.
/// Fails only when the queue cannot be read at all on the first attempt (a wrong URL, no
/// permission); later receive errors are retried with back-off.
pub async fn run(
    sqs: aws_sdk_sqs::Client,
    pipeline: Arc<Pipeline>,
    settings: WorkerSettings,
    on_outcome: OnOutcome,
    stop: impl Future<Output = ()>,
) -> Result<Totals, S3ScanError> {
    let mut stop = std::pin::pin!(stop);
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let totals = Arc::new(std::sync::Mutex::new(Totals::default()));
    let mut tasks = JoinSet::new();
    let mut first = true;
    let mut backoff = Duration::from_millis(500);
    let mut last_busy = Instant::now();
    let visibility = i32::try_from(settings.visibility.as_secs().max(1)).unwrap_or(43_200);
    loop {
        while tasks.try_join_next().is_some() {}
        // Wait for a free slot, then take what else is free (at most 10: SQS's batch size).
        let first_slot = tokio::select! {
            _ = &mut stop => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let mut permits = vec![first_slot];
        while permits.len() < 10 {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let receive = sqs
            .receive_message()
            .queue_url(&settings.queue_url)
            .max_number_of_messages(permits.len() as i32)
            .wait_time_seconds(settings.wait_seconds)
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        let got = tokio::select! {
            _ = &mut stop => break,
            r = receive => r,
        };
        let messages = match got {
            Ok(out) => {
                first = false;
                backoff = Duration::from_millis(500);
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                let why = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e));
                if first {
                    return Err(S3ScanError::Queue {
                        queue: settings.queue_url.clone(),
                        message: why,
                    });
                }
                tracing::warn!(queue = %settings.queue_url, error = %why, "receiving failed; retrying");
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if messages.is_empty() {
            let idle = slots.available_permits() + permits.len() >= settings.concurrency.max(1);
            if !idle {
                last_busy = Instant::now();
            }
            if let Some(limit) = settings.idle_exit {
                if idle && last_busy.elapsed() >= limit {
                    break;
                }
            }
            continue;
        }
        last_busy = Instant::now();
        for (msg, permit) in messages.into_iter().zip(permits) {
            let (sqs, pipeline, settings, on_outcome, totals) = (
                sqs.clone(),
                pipeline.clone(),
                settings.clone(),
                on_outcome.clone(),
                totals.clone(),
            );
            tasks.spawn(async move {
                let t = handle(&sqs, &pipeline, &settings, &on_outcome, msg).await;
                let mut all = totals
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                all.messages += 1;
                all.objects += t.objects;
                all.retried += t.retried;
                all.errors += t.errors;
                drop(permit);
            });
        }
    }
    // Stopping: what is in flight finishes (its messages are deleted or left as it decides).
    while tasks.join_next().await.is_some() {}
    let t = *totals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(t)
}

/// One message: parse, process each object, delete the message when all are settled.
async fn handle(
    sqs: &aws_sdk_sqs::Client,
    pipeline: &Pipeline,
    settings: &WorkerSettings,
    on_outcome: &OnOutcome,
    msg: Message,
) -> Totals {
    let mut t = Totals::default();
    let Some(receipt) = msg.receipt_handle.clone() else {
        return t;
    };
    let attempts: u32 = msg
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let last = attempts >= settings.max_attempts;
    let objects = match event::parse(msg.body.as_deref().unwrap_or_default()) {
        Ok(Parsed::Objects(list)) => list,
        Ok(Parsed::Ignore(why)) => {
            tracing::debug!(why, "message ignored");
            delete(sqs, settings, &receipt).await;
            return t;
        }
        Err(e) => {
            // Retrying cannot make it readable; a dead-letter queue would only collect noise.
            tracing::warn!(message_id = msg.message_id.as_deref().unwrap_or("?"), error = %e, "message dropped");
            t.errors += 1;
            delete(sqs, settings, &receipt).await;
            return t;
        }
    };
    let extender = tokio::spawn(extend(
        sqs.clone(),
        settings.queue_url.clone(),
        receipt.clone(),
        settings.visibility,
    ));
    let mut settled = true;
    for obj in &objects {
        tracing::info!(object = %obj.url(), attempt = attempts, "processing");
        let outcome = pipeline.process(obj, last).await;
        t.objects += 1;
        match &outcome {
            Outcome::Retry(_) => {
                settled = false;
                t.retried += 1;
            }
            Outcome::Untaggable(_) => t.errors += 1,
            _ => {}
        }
        on_outcome(obj, &outcome);
    }
    extender.abort();
    if settled {
        delete(sqs, settings, &receipt).await;
    }
    t
}

/// Keeps a message invisible while its objects are processed.
async fn extend(sqs: aws_sdk_sqs::Client, queue: String, receipt: String, visibility: Duration) {
    let secs = i32::try_from(visibility.as_secs().max(1)).unwrap_or(43_200);
    let every = (visibility / 3).max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sqs
            .change_message_visibility()
            .queue_url(&queue)
            .receipt_handle(&receipt)
            .visibility_timeout(secs)
            .send()
            .await
        {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "extending the message's visibility failed");
        }
    }
}

async fn delete(sqs: &aws_sdk_sqs::Client, settings: &WorkerSettings, receipt: &str) {
    if let Err(e) = sqs
        .delete_message()
        .queue_url(&settings.queue_url)
        .receipt_handle(receipt)
        .send()
        .await
    {
        // The message comes back; the object's tag makes the next attempt a quick skip.
        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "deleting the message failed");
    }
}

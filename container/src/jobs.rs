//! The job board: accepted jobs, idempotent by job id; at most `MAX_CONCURRENT_JOBS` running, the rest
//! queued (bounded); each finished report kept for status queries and delivered to the job's callback.
//! On shutdown every running agent is stopped and every unfinished job reports `failed: interrupted`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bugbot_shared::executor::{FixJob, FixJobId, FixJobStatus, FixOutcome, FixReport};
use tokio::sync::{Semaphore, watch};

use crate::callback::Callback;
use crate::process::Interrupt;
use crate::runner::{INTERRUPTED, Runner};

/// Finished reports kept for `GET /v1/jobs/{id}` (oldest forgotten first).
const KEEP_FINISHED: usize = 1000;

/// What [`JobBoard::submit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// A new job, queued.
    Accepted,
    /// A job with this id is already known (queued, running or done): nothing new runs.
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full")]
    QueueFull,
    #[error("the executor is shutting down")]
    ShuttingDown,
}

#[derive(Debug, Default)]
struct Board {
    jobs: HashMap<FixJobId, FixJobStatus>,
    finished: VecDeque<FixJobId>,
    queued: usize,
    running: usize,
}

#[derive(Debug)]
struct Inner {
    runner: Runner,
    callback: Callback,
    slots: Arc<Semaphore>,
    max_queued: usize,
    board: Mutex<Board>,
    interrupt: Interrupt,
    /// Number of job tasks alive (queued, running, or delivering their callback).
    alive: watch::Sender<usize>,
}

/// Shared handle to the board.
#[derive(Debug, Clone)]
pub struct JobBoard {
    inner: Arc<Inner>,
}

/// Counts for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub queued: usize,
    pub running: usize,
}

impl JobBoard {
    pub fn new(runner: Runner, callback: Callback, max_concurrent: usize, max_queued: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                runner,
                callback,
                slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
                max_queued,
                board: Mutex::new(Board::default()),
                interrupt: Interrupt::new(),
                alive: watch::channel(0).0,
            }),
        }
    }

    /// Accepts `job` unless its id is already known; runs it when a slot is free.
    pub fn submit(&self, job: FixJob) -> Result<Submitted, SubmitError> {
        let inner = &self.inner;
        if inner.interrupt.is_fired() {
            return Err(SubmitError::ShuttingDown);
        }
        {
            let mut board = inner.board.lock().expect("board lock");
            if board.jobs.contains_key(&job.job_id) {
                return Ok(Submitted::Duplicate);
            }
            if board.queued >= inner.max_queued {
                return Err(SubmitError::QueueFull);
            }
            board.jobs.insert(job.job_id.clone(), FixJobStatus::Queued);
            board.queued += 1;
        }
        inner.alive.send_modify(|n| *n += 1);
        tracing::info!(job_id = %job.job_id, "job accepted");
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _alive = AliveGuard(inner.clone());
            inner.process(job).await;
        });
        Ok(Submitted::Accepted)
    }

    pub fn status(&self, id: &FixJobId) -> Option<FixJobStatus> {
        self.inner.board.lock().expect("board lock").jobs.get(id).cloned()
    }

    pub fn load(&self) -> Load {
        let board = self.inner.board.lock().expect("board lock");
        Load { queued: board.queued, running: board.running }
    }

    /// Stops every running agent and refuses new jobs; unfinished jobs report `failed: interrupted`.
    pub fn interrupt(&self) {
        self.inner.interrupt.fire();
    }

    /// [`JobBoard::interrupt`], then waits until every job has reported (callbacks included).
    pub async fn shutdown(&self) {
        self.interrupt();
        let mut alive = self.inner.alive.subscribe();
        let _ = alive.wait_for(|n| *n == 0).await;
    }
}

impl Inner {
    async fn process(&self, job: FixJob) {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            () = self.interrupt.fired() => None,
        };
        let report = if let Some(_permit) = permit {
            self.update(&job.job_id, |board| {
                board.queued -= 1;
                board.running += 1;
                FixJobStatus::Running
            });
            let report = self.runner.run(&job, &self.interrupt).await.report;
            self.update(&job.job_id, |board| {
                board.running -= 1;
                FixJobStatus::Done { report: Box::new(report.clone()) }
            });
            report
        } else {
            let mut report = FixReport::bare(
                job.job_id.clone(),
                job.branch.clone(),
                FixOutcome::Failed { reason: INTERRUPTED.into() },
            );
            self.runner.redactor().redact_report(&mut report);
            self.update(&job.job_id, |board| {
                board.queued -= 1;
                FixJobStatus::Done { report: Box::new(report.clone()) }
            });
            report
        };
        self.remember_finished(job.job_id.clone());

        if let Some(url) = job.callback_url.as_deref() {
            match self.callback.deliver(url, &report).await {
                Ok(()) => tracing::info!(job_id = %job.job_id, "result delivered"),
                Err(e) => tracing::error!(job_id = %job.job_id, error = %e, "result not delivered"),
            }
        }
    }

    fn update(&self, id: &FixJobId, change: impl FnOnce(&mut Board) -> FixJobStatus) {
        let mut board = self.board.lock().expect("board lock");
        let status = change(&mut board);
        board.jobs.insert(id.clone(), status);
    }

    fn remember_finished(&self, id: FixJobId) {
        let mut board = self.board.lock().expect("board lock");
        board.finished.push_back(id);
        while board.finished.len() > KEEP_FINISHED {
            if let Some(old) = board.finished.pop_front() {
                board.jobs.remove(&old);
            }
        }
    }
}

/// Counts a job task as alive until it ends (even by panic).
struct AliveGuard(Arc<Inner>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.send_modify(|n| *n = n.saturating_sub(1));
    }
}

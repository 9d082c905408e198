//! Error names, one definition each, shared by the local runner, the ASL
//! compiler and the activity worker. They are what `{{ failed.error }}`
//! holds, what the worker sends to Step Functions with `SendTaskFailure`,
//! and what ASL `Retry`/`Catch` rules match, so one name means one thing
//! locally and in the cloud.

/// A step's script exited non-zero (or was killed).
pub const SCRIPT_FAILED: &str = "topsail.ScriptFailed";
/// The ASL name, so a `Retry`/`Catch` on `States.Timeout` means the same.
pub const TIMEOUT: &str = "States.Timeout";
/// A declared output was not set.
pub const OUTPUT_MISSING: &str = "topsail.OutputMissing";
pub const SECRET_MISSING: &str = "topsail.SecretMissing";
/// `$TOPSAIL_OUTPUT` or the outputs read from it exceed the runner's limit
/// (`run::outputs::MAX_BYTES`, the same locally and on a worker), or do not
/// fit in a Step Functions payload (256 KiB).
pub const OUTPUT_TOO_LARGE: &str = "topsail.OutputTooLarge";
/// An output holds a secret's value (outputs are stored: the run record,
/// Step Functions' execution history).
pub const SECRET_IN_OUTPUT: &str = "topsail.SecretInOutput";
/// An approval was rejected (at the prompt, or through `topsail approve`).
pub const REJECTED: &str = "topsail.Rejected";
/// Docker unreachable, image missing, container could not start, bad value.
pub const RUNTIME: &str = "topsail.RuntimeError";

/// A step failed and its catch handler ran (the execution's error).
pub const STEP_FAILED: &str = "topsail.StepFailed";
/// The worker does not run this image (`--allow-image`) or host steps (`--allow-host`).
pub const IMAGE_NOT_ALLOWED: &str = "topsail.ImageNotAllowed";
/// The task asks for a secret the worker's operator did not allow (`--secret`).
pub const SECRET_NOT_ALLOWED: &str = "topsail.SecretNotAllowed";
/// The worker was stopped (SIGTERM) before the task finished within its grace period.
pub const WORKER_SHUTDOWN: &str = "topsail.WorkerShutdown";
/// Step Functions' name for a task whose worker stopped sending heartbeats.
pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
/// The task input could not be understood (wrong version, bad text, a
/// name that is not one: see the worker's `check_identifiers`).
pub const BAD_INPUT: &str = "topsail.BadTaskInput";
/// A required param was missing from the execution input (a Fail state).
pub const MISSING_PARAM: &str = "topsail.MissingParam";
/// A param in the execution input has the wrong JSON type (a Fail state).
pub const BAD_PARAM: &str = "topsail.BadParam";

"""A local Step Functions (+ SQS) emulator for topsail's tests: moto 5.2.5's
server with its ASL interpreter switched on and activities made to work.

    .venv/bin/python tests/support/sfn_emulator.py PORT

Listens on 127.0.0.1:PORT. Each patch below says which gap of moto it fills
(see /work/shared/SFN-EMULATOR.md); none changes what a correct client sees
on AWS, they make the emulator behave more like AWS.
"""

import os
import sys
import threading
import time
import uuid

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 4599
# Service integrations (the SQS sendMessage of an approval) call back into
# moto at localhost:MOTO_PORT, so it must be our port; set before moto loads.
os.environ["MOTO_PORT"] = str(PORT)

from moto.core.config import default_user_config  # noqa: E402

# Run the ASL for real instead of answering every execution with SUCCEEDED.
default_user_config["stepfunctions"]["execute_state_machine"] = True

from moto import server  # noqa: E402
from moto.stepfunctions import models as sfn_models  # noqa: E402
from moto.stepfunctions import responses as sfn_responses  # noqa: E402
from moto.stepfunctions.parser import models as parser_models  # noqa: E402
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (  # noqa: E402
    FailureEvent,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (  # noqa: E402
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (  # noqa: E402
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (  # noqa: E402
    state_task_activitiy as activity_task,
)
from moto.stepfunctions.parser.asl.eval.callback import callback  # noqa: E402
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails  # noqa: E402
from moto.stepfunctions.parser.api import HistoryEventType  # noqa: E402
from moto.stepfunctions.parser.backend.activity import Activity  # noqa: E402

# Activity ARN -> the interpreter's Activity (its queue of tasks); token -> endpoint.
STORE = {}
ENDPOINTS = {}
# Guards both dicts; GetActivityTask waits on it for new tasks (long poll).
COND = threading.Condition()

# 1. moto gives every execution an empty activity store, so an activity task
#    fails with "activity does not exist": keep one store, filled by CreateActivity.
_create_activity = sfn_models.StepFunctionBackend.create_activity


def create_activity(self, name, *args, **kwargs):
    act = _create_activity(self, name, *args, **kwargs)
    with COND:
        STORE.setdefault(act.arn, Activity(arn=act.arn, name=name))
    return act


sfn_models.StepFunctionBackend.create_activity = create_activity


class Execution(parser_models.Execution):
    def __init__(self, *args, **kwargs):
        kwargs["activity_store"] = STORE
        super().__init__(*args, **kwargs)


parser_models.Execution = Execution

# 2. Remember each task's endpoint, under the lock, so a poller never sees a
#    task whose endpoint does not exist yet; wake the pollers.
_add_activity_task = callback.CallbackPoolManager.add_activity_task


def add_activity_task(self, callback_id, activity_arn, activity_input):
    with COND:
        ep = _add_activity_task(self, callback_id, activity_arn, activity_input)
        ENDPOINTS[callback_id] = ep
        COND.notify_all()
    return ep


callback.CallbackPoolManager.add_activity_task = add_activity_task


# 3. A task nobody polled before its timeout raised AttributeError (`_outcome`
#    unset); and such an abandoned task must not be handed out later.
def start_wait(self, timeout_seconds):
    got = self._next_activity_task_start_event.wait(timeout=timeout_seconds)
    self.abandoned = not got
    return getattr(self, "_outcome", None)


callback.ActivityTaskStartEndpoint.wait = start_wait


# 4. GetActivityTask is not implemented: long-poll for up to 60 s like AWS.
#    An activity that does not exist (or a malformed ARN) fails at once with
#    AWS's error (ActivityDoesNotExist, InvalidArn) instead of waiting.
def get_activity_task(self):
    arn = self._get_param("activityArn")
    worker = self._get_param("workerName")
    self.stepfunction_backend.describe_activity(arn)
    deadline = time.monotonic() + 60
    with COND:
        while True:
            act = STORE.get(arn)
            while act is not None and act._tasks:
                task = act._tasks.popleft()
                ep = ENDPOINTS.pop(task.task_token, None)
                start = ep and ep.get_activity_task_start_endpoint()
                if ep is None or getattr(start, "abandoned", False):
                    continue
                ep.notify_activity_task_start(worker_name=worker)
                return sfn_responses.ActionResult(
                    {"taskToken": task.task_token, "input": task.task_input}
                )
            left = deadline - time.monotonic()
            if left <= 0:
                return sfn_responses.ActionResult({})
            COND.wait(left)


sfn_responses.StepFunctionResponse.get_activity_task = get_activity_task


# 5. SendTaskFailure dropped `cause`; the worker's cause (exit code, stderr) matters.
def send_task_failure(self):
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"),
        error=self._get_param("error"),
        cause=self._get_param("cause"),
    )
    return sfn_responses.EmptyResult()


sfn_responses.StepFunctionResponse.send_task_failure = send_task_failure


# 6. A heartbeat for a task without HeartbeatSeconds was refused (InvalidToken);
#    AWS accepts it.
def notify_heartbeat(self):
    if self._heartbeat_endpoint is not None:
        self._heartbeat_endpoint.notify()
    return True


callback.CallbackEndpoint.notify_heartbeat = notify_heartbeat

# 7. StartExecution without a name gave an ARN ending in `:None`; AWS makes a UUID.
_start_execution = parser_models.StepFunctionsParserBackend.start_execution


def start_execution(self, arn, name=None, execution_input=None, trace_header=None):
    return _start_execution(self, arn, name or str(uuid.uuid4()), execution_input, trace_header)


parser_models.StepFunctionsParserBackend.start_execution = start_execution

# 8. A missed heartbeat was reported as States.Timeout; AWS says
#    States.HeartbeatTimeout, which topsail's Retry matches to retry elsewhere.
_from_error = activity_task.StateTaskActivity._from_error


def from_error(self, env, ex):
    if isinstance(ex, callback.HeartbeatTimeoutError):
        name = StatesErrorNameType.StatesHeartbeatTimeout
        return FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=name),
            event_type=HistoryEventType.ActivityTimedOut,
            event_details=EventDetails(
                activityTimedOutEventDetails=activity_task.ActivityTimedOutEventDetails(
                    error=name.to_name(), cause="the worker stopped sending heartbeats"
                )
            ),
        )
    return _from_error(self, env, ex)


activity_task.StateTaskActivity._from_error = from_error

# 9. StopExecution only flagged the program as stopped: the interpreter stayed
#    blocked on the running activity task until its heartbeat ran out, the
#    execution stayed RUNNING and then failed with States.Timeout. On AWS it
#    is ABORTED at once and its open task tokens are closed (a heartbeat then
#    answers TaskTimedOut / InvalidToken). Wake every waiting task so the
#    interpreter ends the execution now.
_stop = parser_models.Execution.stop


def stop(self, stop_date, error, cause):
    _stop(self, stop_date, error, cause)
    worker = getattr(self, "exec_worker", None)
    pool = worker and worker.env.callback_pool_manager
    if pool is not None:
        with COND:
            for ep in list(pool._pool.values()):
                ep.interrupt_all()
            COND.notify_all()


parser_models.Execution.stop = stop

if __name__ == "__main__":
    server.main(["-H", "127.0.0.1", "-p", str(PORT)])

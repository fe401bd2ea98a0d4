"""ModelRetrain: train a challenger from the database, judge it beside the champion on the same
held-out customers, promote it only when it is not worse (the `model-retrain` schedule)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.train import DecideModelInput, EvaluateInput, TrainActivities, TrainInput
    from retention.retraining import RETRAIN_WORKFLOW_TYPE, RetrainDecision, RetrainRequest

# Training is long: a generous deadline, a heartbeat after every step so a lost worker is
# noticed within minutes rather than at the deadline. Too little history is not retried.
TRAINING_TIMEOUT = timedelta(hours=2)
TRAINING_HEARTBEAT = timedelta(minutes=10)
EVALUATION_TIMEOUT = timedelta(minutes=30)
DECISION_TIMEOUT = timedelta(minutes=2)
RETRAIN_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=["InvalidInput"])


@workflow.defn(name=RETRAIN_WORKFLOW_TYPE)
class ModelRetrain:
    @workflow.run
    async def run(self, request: RetrainRequest) -> RetrainDecision:
        info = workflow.info()
        challenger = await workflow.execute_activity_method(
            TrainActivities.train_challenger,
            TrainInput(seed=request.seed, as_of=request.as_of),
            task_queue=request.heavy_task_queue,
            start_to_close_timeout=TRAINING_TIMEOUT,
            heartbeat_timeout=TRAINING_HEARTBEAT,
            retry_policy=RETRAIN_RETRY,
            summary="train a challenger from the database",
        )
        held_out = await workflow.execute_activity_method(
            TrainActivities.evaluate_on_holdout,
            EvaluateInput(challenger=challenger, as_of=request.as_of),
            task_queue=request.heavy_task_queue,
            start_to_close_timeout=EVALUATION_TIMEOUT,
            retry_policy=RETRAIN_RETRY,
            summary=f"judge {challenger.version} and the champion on the same held-out customers",
        )
        return await workflow.execute_activity_method(
            TrainActivities.decide_promotion,
            DecideModelInput(
                retrain_id=f"{info.workflow_id}/{info.run_id}",
                challenger=challenger,
                held_out=held_out,
            ),
            start_to_close_timeout=DECISION_TIMEOUT,
            retry_policy=RETRAIN_RETRY,
            summary="promote or keep; record both cards",
        )

"""Evaluating a trained model: the numbers papers report, computed one way for the CLI and
the window, described once (:mod:`.metrics`), kept with the model (:mod:`.record`)."""

from explorer.evaluation.metrics import BY_KEY, COLUMNS, METRICS, Better, Group, MetricSpec
from explorer.evaluation.record import Evaluation, records_from_json, with_record
from explorer.evaluation.suite import ALL_GROUPS, EvaluationRequest, Subject, evaluate_model

__all__ = ["ALL_GROUPS", "BY_KEY", "COLUMNS", "METRICS", "Better", "Evaluation", "EvaluationRequest", "Group",
           "MetricSpec", "Subject", "evaluate_model", "records_from_json", "with_record"]

"""The monitoring group: what the served model saw (prediction_log), what really happened (labels), and how the
model holds up (model_monitoring: drift, estimated and realized quality, fairness, staleness)."""

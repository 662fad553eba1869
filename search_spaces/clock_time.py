"""Time on a 12-hour dial: minutes after 12:00 and the common-sense error between two times.

Every clock head decodes to minutes after 12:00 (0-719); these functions score such readings the
same way for every head.
"""
from __future__ import annotations

import numpy as np

MINUTES_PER_DIAL = 720


def common_sense_error_minutes(true_minutes, predicted_minutes) -> np.ndarray:
    """Distance in minutes between two times on a 12-hour dial: ``min(|d|, 720 - |d|)``.

    Args:
        true_minutes, predicted_minutes: minutes after 12:00 (any real numbers; taken modulo 720),
            arrays of the same shape or broadcastable.

    Returns:
        float64 array in [0, 360]. 11:55 vs 0:05 is 10; 6:00 vs 0:00 is 360; 0:00 vs 11:59 is 1.
    """
    difference = np.abs(np.asarray(true_minutes, dtype=np.float64)
                        - np.asarray(predicted_minutes, dtype=np.float64)) % MINUTES_PER_DIAL
    return np.minimum(difference, MINUTES_PER_DIAL - difference)


def labels_to_minutes(labels) -> np.ndarray:
    """(N, 2) (hour 0-11, minute 0-59) -> (N,) minutes after 12:00."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise ValueError(
            f"Expected clock labels of shape (N, 2) = (hour, minute), got {labels.shape}.")
    return (labels[:, 0].astype(np.int64) % 12) * 60 + labels[:, 1].astype(np.int64)


def error_summary(true_minutes, predicted_minutes) -> dict[str, float]:
    """Mean and median common-sense error, and the shares within 1 and 5 minutes."""
    errors = common_sense_error_minutes(true_minutes, predicted_minutes)
    if errors.size == 0:
        raise ValueError("Cannot summarize the error of an empty set of predictions.")
    return {"cse_mean": float(errors.mean()), "cse_median": float(np.median(errors)),
            "within_1min": float(np.mean(errors <= 1.0)),
            "within_5min": float(np.mean(errors <= 5.0))}

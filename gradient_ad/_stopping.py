"""Early stopping that is right for losses below zero."""

from skorch.callbacks import EarlyStopping


class SignSafeEarlyStopping(EarlyStopping):
    """skorch's :class:`~skorch.callbacks.EarlyStopping`, with the relative threshold
    taken of the score's magnitude.

    The GradCon loss ``L_rec - alpha * mean cos`` goes below zero once the aligned
    gradient term outweighs the reconstruction error, as it does on images in [0, 1].
    skorch multiplies the threshold by the signed score (skorch-dev/skorch#1065), so
    for a negative loss an epoch up to ``threshold * |best|`` *worse* than the best
    counts as an improvement: patience restarts and ``load_best`` keeps the worse
    weights, and the drift can repeat. Non-negative scores are treated exactly as by
    skorch.
    """

    def _calc_new_threshold(self, score):
        if self.threshold_mode == "rel":
            change = self.threshold * abs(score)
        else:
            change = self.threshold
        return score - change if self.lower_is_better else score + change

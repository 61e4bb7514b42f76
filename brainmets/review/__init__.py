"""A reviewer's look at each patient: the review page, flags for review, and corrections fed back into tracking."""

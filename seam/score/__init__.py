"""SEAM: the formula (pure) and the scoring pipeline that feeds it."""

from .formula import AGGREGATES, DETAIL_COLUMNS, SCORE_COLUMNS, WEIGHTINGS, aggregate, details_frame, negative_terms

__all__ = ["AGGREGATES", "DETAIL_COLUMNS", "SCORE_COLUMNS", "WEIGHTINGS", "aggregate", "details_frame", "negative_terms"]

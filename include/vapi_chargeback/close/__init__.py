"""Closing the books: statement numbers, the invoice tie-out, corrections of final months,
the draft → final lifecycle and its append-only audit trail.

Pure, Airflow-free pieces, one job per module; the pipeline, publishing and the DAG wire
them together.
"""

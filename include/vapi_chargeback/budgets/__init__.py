"""Budgets and month to date: what each cost center has spent so far, where the month is
heading, and how that compares with its budget — computed daily by the same plan → fetch →
allocate → reconcile code as the monthly statement.

``settings`` (the ``budgets:`` and ``daily:`` blocks of ``chargeback.yaml``), ``mtd``
(the published figures, the readers' contract), ``forecast`` (the month-end estimate,
pure), ``period`` (the cut month), ``run`` (the daily run's steps) and ``outputs`` (the
``_mtd`` files).
"""

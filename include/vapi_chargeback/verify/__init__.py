"""Verification: the month recounted from call records (``GET /call``), a second source
beside ``POST /analytics``, compared line by line and day by day (issue 14)."""

"""Statement writers: CSV, Excel workbooks and the manifest."""

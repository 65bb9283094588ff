"""Files made from a statement for other tools: FOCUS for FinOps tools, a journal for the ERP."""

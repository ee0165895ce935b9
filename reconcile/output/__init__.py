"""Runs → what people and machines read: the JSON report, the text plan, Markdown, the audit, exported files."""

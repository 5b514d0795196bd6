"""Reports from stored results: leaderboards (Markdown/CSV), HTML reports and their plots."""

"""Results: metric records to CSV, summaries, plots (written under results/)."""

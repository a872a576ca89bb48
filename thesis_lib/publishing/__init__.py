"""What the chapters show: figures, diagrams, comparisons, the seeds' tables and a chapter's first cell."""

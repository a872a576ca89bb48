"""What the chapters show: figures, diagrams, the seeds' tables and a chapter's first cell."""

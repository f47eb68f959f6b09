"""The worker as a service: dramatiq broker and actors, retries, dead letters, the due scheduler, metrics."""

"""Celery workers that run training jobs with the core engine."""

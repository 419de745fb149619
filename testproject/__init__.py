"""A small real Django site that uses django-jobs: the demo and the test settings."""

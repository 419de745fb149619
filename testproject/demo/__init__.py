"""Demo tasks and the demo_enqueue command for the test project."""

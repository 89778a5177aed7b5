"""Workflow steps. Each module registers its steps with @step; workflow.load_steps imports them."""

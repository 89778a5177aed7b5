"""Workflow steps. Each module registers its steps with @step; workflow.load_steps imports the
modules listed in workflow.STEP_MODULES."""

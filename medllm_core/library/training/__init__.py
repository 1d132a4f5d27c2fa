"""Training helpers shared by the training stages (TRL + PEFT do the training)."""

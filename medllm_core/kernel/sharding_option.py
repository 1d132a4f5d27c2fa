"""The ``hardware.sharding`` profile option (kernel side: the schema only; library/sharding.py acts on it)."""

SHARDING_CHOICES = ("auto", "none", "fsdp")
SHARDING_HELP = ("several GPUs: 'none' (DDP, a full model copy per GPU), 'fsdp' (FSDP2: weights sharded across "
                 "the GPUs), 'auto' (FSDP only when the LoRA estimate does not fit one GPU but fits sharded)")

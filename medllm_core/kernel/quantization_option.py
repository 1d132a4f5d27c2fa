"""The ``model.quantization`` profile option (kernel side: the schema only; library/quantization.py acts on it)."""

QUANTIZATION_CHOICES = ("auto", "none", "4bit")
QUANTIZATION_HELP = ("base weights: 'none' (bf16/fp16), '4bit' (QLoRA, NF4 + double quant, needs bitsandbytes), "
                     "'auto' (4-bit only when the bf16/fp16 LoRA estimate does not fit the card)")

"""attnlib: a reproducible companion to "On the Dynamics of Training Attention Models" (Lu, Mao, Nayak, ICLR 2021)."""

__version__ = "0.1.0"

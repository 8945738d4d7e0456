"""Communication backends behind :mod:`scorch.distributed`, which alone builds them: collectives and the
failure protocol. Other modules import only the :class:`~.base.Backend` type (the strategies, which place
the model, use its collectives)."""

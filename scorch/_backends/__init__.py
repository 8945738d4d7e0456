"""Distributed backends behind :mod:`scorch.distributed`. Nothing else imports these."""

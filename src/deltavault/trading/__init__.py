"""The trading domain: positions and collateral books, booking, reconcile, reconstruct."""

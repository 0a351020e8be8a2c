"""Liquidity of the wrappers on decentralised exchanges: pure functions over a pool's stored state (no I/O).

`v3`: Uniswap v3-style concentrated-liquidity pools (exact swaps, mid price, depth, premium against NAV).
"""

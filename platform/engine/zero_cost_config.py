"""The checks of the sweep file's proxy keys: ``proxies:`` (logged ``proxy/*`` before every
trial's training) and ``zero_cost:`` (`config_schema.ZeroCostConfig`, the options of
``mode: zero_cost``, engine/zero_cost.py); config.py's `validate` calls `check_proxy_keys`."""
from __future__ import annotations

from nasforge.platform.errors import ConfigError


def check_proxy_keys(cfg) -> None:
    """One-line errors for unknown proxy names and bad sizes (``cfg`` is a SweepConfig)."""
    from nasforge.platform.engine.proxies import PROXIES, check_proxies

    for key, names in (("proxies", cfg.proxies), ("zero_cost.proxies", cfg.zero_cost.proxies),
                       ("zero_cost.members", cfg.zero_cost.members), ("zero_cost.rank_by", [cfg.zero_cost.rank_by])):
        try:
            check_proxies(names)
        except ValueError as e:
            raise ConfigError(f"{key}: {e}") from None
    if "ensemble" in cfg.proxies:
        raise ConfigError("proxies: ensemble ranks among many samples; it is measured by mode zero_cost only "
                          f"(valid here: {', '.join(PROXIES)})")
    if cfg.mode != "zero_cost":
        return
    z = cfg.zero_cost
    for key in ("samples", "top_k"):
        if getattr(z, key) < 1:
            raise ConfigError(f"zero_cost.{key}: must be >= 1, got {getattr(z, key)}")
    if "ensemble" in z.members:
        raise ConfigError(f"zero_cost.members: the ensemble's members are proxies; valid: {', '.join(PROXIES)}")
    needed = set(z.members) if z.rank_by == "ensemble" else {z.rank_by}
    missing = sorted(needed - set(z.proxies))
    if missing:
        raise ConfigError(f"zero_cost.proxies: rank_by {z.rank_by} needs {', '.join(missing)} among the proxies")

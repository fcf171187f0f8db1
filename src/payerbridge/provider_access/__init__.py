"""Provider Access (CMS-0057-F, PDex 2.2; ADR 0059): attribution of members to
in-network providers, the members' opt-outs, and the providers' Groups."""

__all__: list[str] = []

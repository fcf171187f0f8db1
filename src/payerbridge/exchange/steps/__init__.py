"""The step machine of an outbound exchange (``machine.proceed``) and its steps: the
old payer's ``$member-match``, the record's retrieval, its reviewer's wait and the consent
decided at each hop."""

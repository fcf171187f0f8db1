"""What operators do with exchanges: replay, cancel, ask again, revoke; the bulk
replay of a partner's dead letters; the search and the timeline they read."""

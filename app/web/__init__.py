"""The web pages reporters meet: server-rendered, working with JavaScript off, no
third-party assets, every string from a message catalogue (Korean by default)."""


	synthetic
tokens
token_interval_usÀ„=

	synthetic
tokens
hang_at
token_cost_us2

charlmThe
temperature	ü©ñÒMbP?

seed

max_tokens<
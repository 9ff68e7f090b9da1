
charlm
	max_token
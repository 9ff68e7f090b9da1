
	synthetic
tokens

fail_at
â
rate_limited	slow down 
-- wrk script for bench/proxy_cache.py: every request asks for a URL nobody asked for
-- before (a query string made of the run's token and a counter), so every request is a
-- cache miss that goes to the origin. Usage: wrk -s cache_miss.lua URL -- TOKEN
local token, n = "", 0

function init(args)
  token = args[1] or ""
end

function request()
  n = n + 1
  return wrk.format(nil, wrk.path .. "?miss=" .. token .. "-" .. n)
end

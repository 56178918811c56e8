-- wrk script: every response's status and body are checked against what goserver must
-- answer for the request below (examples/goserver/main.go); done() prints the counts.
wrk.path = "/?name=wrk&year=2024"
local want = "Hello, wrk! Welcome to 2024. Site status: 200\n"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good, bad = 0, 0
end

function response(status, headers, body)
  if status == 200 and body == want then
    good = good + 1
  else
    bad = bad + 1
    if bad <= 3 then io.stderr:write("wrong response: " .. status .. " " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format("checked good=%d bad=%d requests=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    g, b, summary.requests, e.connect, e.read, e.write, e.timeout, e.status))
end

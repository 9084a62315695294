-- wrk script: POST batches of BATCH_SIZE complete responses, each item with a unique client_id.
local file = assert(io.open(os.getenv("BODY"), "rb"))
local item = file:read("*a"):gsub("}%s*$", "")
file:close()
local size = tonumber(os.getenv("BATCH_SIZE") or "1000")
local counter = 0
-- Each wrk thread has its own Lua state, seeded alike: client ids are made unique per thread
-- (numbered in setup) and per run (the clock), or the threads would post each other's items
-- again and half of them would be replays.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
-- An item up to its client id's number, made once: a batch is assembled from shared strings and
-- copied once (concatenating each item copied it twice more, CPU the load generator took from
-- the server on the same cores).
local first_item, next_item
function init(args)
  first_item = item .. string.format(',"client_id":"%d-%d-', os.time(), thread_number)
  next_item = "," .. first_item
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")

function request()
  local parts = {'{"items":['}
  for i = 1, size do
    counter = counter + 1
    parts[#parts + 1] = i == 1 and first_item or next_item
    parts[#parts + 1] = counter
    parts[#parts + 1] = '"}'
  end
  parts[#parts + 1] = "]}"
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
  io.write(string.format("items posted: %d\n", size * summary.requests))
  io.write(string.format("batches/s %.2f -> responses/s %.0f\n", summary.requests / (summary.duration / 1e6), size * summary.requests / (summary.duration / 1e6)))
end

-- wrk script: cycle through the URL paths listed one per line in the file given after `--`.
local paths = {}
local index = 0

init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  index = math.random(#paths) - 1 -- each thread starts somewhere else in the set
end

request = function()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end

module example.com/streamer

go 1.19

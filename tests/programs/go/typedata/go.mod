module example.com/typedata

go 1.19

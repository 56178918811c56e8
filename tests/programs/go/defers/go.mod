module example.com/defers

go 1.19

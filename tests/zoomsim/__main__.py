from tests.zoomsim.server import main

main()

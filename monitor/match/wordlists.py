"""Word lists for place disambiguation (data, not logic).

COMMON_WORDS: place names in the gazetteer that are also ordinary English words. Generated
once from every usable gazetteer spelling (single words, Latin letters) whose lower-case form
is a lower-case entry of the SCOWL American English word list (Debian ``wamerican``), minus
eponyms that mostly mean the place (cologne, oxford, bologna, ...), plus a few by hand
(hope, bath, ...). Regenerate when the gazetteer changes (see docs/matching.md).

FIRST_NAMES: common given names, for the ``Jack London`` / ``Paris Hilton`` rule.
"""

from __future__ import annotations

COMMON_WORDS = frozenset(
    """
acacias acre ado agar aim airport alabaster ale alga alley alliance aloha along alter altos amen
anchorage angers angle annex antelope anthem apex arbutus archangel arching archway area argyle
ascot asp ate auburn bad bade badger bag bake bale balsas ban bandana bane banes banged bangs
bani banjo banning bar bard barium barking barn barrage barrios barrow basic bassi baste bat
bath battleground baud bay bear bell bend bender best bid big billings bimbo bloom bluffs bode
bolder bole bone bonito bonny boo boom boon boons born borne bossier boulder bountiful bow bra
brad brake bray brick broach brusque buckeye buffalo bun burg burs bury bust but butte butterfly
buy cage cairns caller canal canes canning canton care carpi cars cassino centennial center
central centurion chagrin chair champion champs chandler chaparral chi chin chinking chino clay
clot cloverleaf cobra cocoa columbine coma combs come commonwealth compendium conception concord
cone confederation consolation converse coo cordon cork corona creek crossroads crystal cypress
dab dam dame dandy date davenport dawn deal debar defiance deli delis delta derby dick dilly dis
diva divas dogwood dole dome dosing dour downtown drug dual due dyer eagle earnest elbow emery
empire emporia enterprise era eras erode eureka evens ever evergreen far fate federal felling
fez fiddlesticks fishers flagstaff fleet flint flora florin flushing fora fords fore forest
forge fountain fowling freedom freshwater from furnace gale gap garland garner garrison gay gel
genes gent germinal gill goes gold golden gondola google granges grants grapevine grass grays
green grenade griffin grin grins grove groves gums hag hail hale hall hang harrow hart hawthorn
hays hem hermitage hexing hickory highland highlands hillside hims hippo ho holiday homestead
hook hope horn hosanna hove hub hula hull human humble hums humus hunter hurricane ibis imperial
independence int jam jasper jingling junction kale karakul keen kens keystone khan kilo kin
kinder lacrosse lag lama lampoon lancing lander largo lat lattes laurel leek leer lemon lemur
lend lens lessen liberal liberty lice lids lien lime limo linden linen lints lion lira lisle
lively lob log logos lone loop lop lot luau luck lupin magenta magnesia maidenhead male man
manage manga manger mango manly manning mantes mantilla marathon march marina market marks
marshal martin mascara mascot mason med media megalopolis mentor meres meridian mesa meshed
mesquite metro midland midstream midway mien mile mine minster mire mission mite mobile mocha
mole moll more mos mosquito moss most much mush mustang myrtle mystic nails name neath neptunium
never newel nice nit nix noisy normal north novae ode of off officer ogre okay one opera
opportunity oral orange orchards outer overland pa pace pal palmetto palmy panda pandas pantheon
pap papas papaya paradise paramount pare parole pastas pearl peer pen perm pert pest pet pets
pin pinto piranhas pita plain plantation plaque plaza plum plunge plunges police polo pop port
portage posse possession pout pristine proclamation proctors prosper providence pueblo puma pun
put quack quarto queens raja ram rapid ray reading redwood republic reservoir rest retreat revel
revere rho rich riding rim rise risen riverside rivet roan robe rogers roles roman roses rosette
rot rouge roundabout rouse rube rugby rung ruse rust rye saga sake saki salamis sale saline
salines salon salt samba same sandy sari saris savage savanna say schooner seaside sedan seen
semi senna sera seraglio sere set shaping she shields shoreline shortens shot shut side silvan
sim simmering sin since sine sing siren sis skit slashes slaughter slough snits soda sol sole
soli solo soul sour souse sparks spike spire spires split spoken spray spring springs squawk
stains sterling stoke stow sue sues sulphur summit sumo sunning sunrise sunset superior surprise
swallow swords sycamore tabu taker tale tall tam tamale tame tampon tan tango tank tape tars
tartar tell tempi temple tender termini terminus terrace thorn tilt time ting tire tiro tome
tone tongue tooting tor torn torrent tors tour tours trap trident truss tsunami tub tuba tucker
tulle tunas tune tuner tunes turn turner tyros union university upland uptown valence valley van
vans vermilion verve veto victor vie vine vineyard vista wadi waits waling walker walling walnut
wan warder ware warren wave waver wean weasel wed wedding weir welling wells wen westerly wetter
wheeling woodland woodlands worms worth wright ye yen young zest
""".split()
)

FIRST_NAMES = frozenset(
    """
aaron abigail adam adele adrian agnes ahmed aiden alain alan albert aleksandr alex alexander
alexandra alexei alexis alfred ali alice alicia allison amanda amber amelia amy anders andrea
andrei andrew angela angelo anna anne annie anthony anton antonio ariel arthur ashley austin ava
barbara barry ben benjamin beth betty beverly bill billy bob bobby bonnie boris brad bradley
brandon brenda brian brittany bruce bruno bryan caleb cameron carl carla carlo carlos carmen
carol caroline carolyn catherine charles charlie charlotte chelsea chen cheryl chloe chris
christian christina christine christopher cindy claire clara claude colin connor craig crystal
cynthia dakota dale dallas dan daniel danielle danny david dean debbie deborah denise dennis
denver derek diana diane dmitri donald donna dorothy doug douglas dylan eddie edward elena eli
elif elijah elizabeth ella ellen emil emilio emily emma enrique eric erica erin ethan eugene eva
evan evelyn fatima felix fernando florence frances francesca francesco francis frank franz fred
friedrich gabriel gary george georgia gerald gianni giovanni giuseppe gloria gordon grace greg
gregory gustavo hailey hannah hans harold harry hassan heather heinrich helen helmut henry holly
howard hugo ian igor ingrid isaac isabella ivan jack jackson jacob jacques jake james jamie jan
jane janet janice jason javier jean jeff jeffrey jennifer jenny jens jeremy jerry jesse jessica
jill jim jimmy joan joao joe joel johan john johnny jon jonathan jordan jorge jose josef joseph
josh joshua joyce juan judith judy juergen julia julie julien jurgen justin karen karl katherine
kathleen kathryn kathy katie kayla keith kelly ken kenneth kevin kim kimberly klaus kofi kyle
larry lars laszlo laura lauren lawrence leah lee leo leon lily lincoln linda lisa logan lorenzo
lori louis louise luca lucas lucy luigi luis luke lydia madison manuel marcel marco maria marie
marilyn mario marta martha mary mateo mathieu matt matthew megan mehmet melissa michael michelle
miguel mike mikhail milan mohamed mohammed molly morgan muhammad nadia nancy natalie natasha
nathan neil nicholas nick nicole nikolai noah norma olga oliver olivia omar orlando oscar pablo
pamela paris patricia patrick paul paula pedro peggy peter philip phillip pierre piotr rachel
rafael ralph ramon randy raymond rebecca regina ricardo richard rick rita robert roberto robin
roger rolf ronald rose roy ruby russell ruth ryan sally sam samantha samuel sandra sara sarah
scott sean sebastian sergei sergio seth sharon shawn shirley silvia sofia sophia sophie stefan
stephanie stephen steve steven sue susan svetlana sydney tammy teresa terry theresa thomas
tiffany tim timothy tina todd tom tomas tommy tony tracy travis troy tyler valerie vanessa
victoria vincent virginia vladimir walter wanda wayne wei wendy william willie wolfgang yuri
yusuf zachary
""".split()
)

# Words before a name that make it a person: ``Mr London``, ``President Jordan``.
HONORIFICS = frozenset(
    """
mr mrs ms miss mx dr prof sir dame lord lady rev father sister brother president senator
governor mayor minister judge justice general colonel captain sergeant officer coach
""".split()
)

# Capitalised words that commonly follow a place name (so ``Paris Police`` is still Paris).
PLACE_FOLLOWERS = frozenset(
    """
airport city county council police metro station bridge street road square mayor marathon
university hospital zoo court district region province state area harbour harbor port bay
river valley fashion week agreement accord club fc united climate summit conference talks
attack attacks bombing floods flooding fire fires earthquake storm protests protest riots
olympics games stock exchange market prefecture municipality province government authorities
residents officials hall cathedral museum opera tower center centre west east north south
uptown downtown old new grand central international motor show film festival
monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december
""".split()
)
